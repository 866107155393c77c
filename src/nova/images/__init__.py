"""Runtime images: the read-only root filesystem container instances run on.

Two kinds per runtime. ``host`` binds the host's own /usr (and the loader's files) read-only:
nothing to build, but instances depend on whatever the host has installed. ``debian`` is a
debootstrap'ed minbase root with just the runtime's Debian packages, built once on demand,
identified by the hash of its recipe and resolved package versions, and cached under
``<data_dir>/images/``.

Modules: ``recipe`` (what goes into an image, which kind a runtime uses), ``manifest`` (what a
built image records, its id), ``progress`` (debootstrap's output as a progress fraction),
``debootstrap`` (the real builder), ``store`` (images on disk, atomic builds), ``service`` (the
daemon's view: background builds, status, the port backends resolve images through).
"""
