"""Enterprise contracts: seats purchased at an annual price, annual and true-forward invoices, the licence."""
