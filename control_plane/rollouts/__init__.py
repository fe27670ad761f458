"""Rollouts: a release carried across a selection of workspaces in canary and waves, behind health gates."""
