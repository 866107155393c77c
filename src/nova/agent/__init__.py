"""The in-sandbox agent and its wire protocol. Stdlib only: this package ships inside images."""
