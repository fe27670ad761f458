"""Organizations: the customers that own workspaces."""
