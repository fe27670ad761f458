"""Canopy billing: the engine that decides what is owed (:mod:`billing.engine`, pure) and the payment gateway
that collects it (:mod:`billing.gateway`, :mod:`billing.stripe_gateway`, :mod:`billing.webhooks`).

Never imports ``control_plane``: the control plane wires billing to accounts, workspaces and the reconciler.
"""
