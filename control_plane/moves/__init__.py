"""Moving a Professional organization's workspace up to an Enterprise silo, its data copied."""
