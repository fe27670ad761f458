"""Sales: Enterprise customers (organization, owner invitation, contract and silo workspace) in one step."""
