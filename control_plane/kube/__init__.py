"""Workspace servers on Kubernetes: objects rendered as data, server-side applied, rollouts read like kubectl.

- :mod:`render`: pure functions from a workspace to its objects (dicts).
- :mod:`client`: the typed adapter over the official client (apply, get, delete, list, update, discovery).
- :mod:`rollout`: ``kubectl rollout status`` semantics and a wait.
- :mod:`eks`: EKS cluster name to client (kubeconfig overrides, or endpoint + IAM token).
- :mod:`deployer`: :class:`~control_plane.kube.deployer.KubernetesCompute`, a ComputeProvider.
"""
