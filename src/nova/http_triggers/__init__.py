"""HTTP triggers: function URLs and custom routes (the table, webhook signatures, the service).

The HTTP side - turning a request into a Lambda function-URL event and a result into a
response - is in ``nova.api.http_trigger``.
"""
