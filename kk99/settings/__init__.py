"""Settings package: ``base`` holds everything shared; ``dev``, ``test`` and ``production``
adjust it per environment. Everything is read from the environment (see README, Configuration)."""
