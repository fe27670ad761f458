"""Self-serve billing of Professional organizations: the control plane side of :mod:`billing`."""
