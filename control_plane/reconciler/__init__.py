"""Background workers: procrastinate app, reconcile tasks and the worker entry point."""
