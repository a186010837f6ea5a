"""Configuration read at start-up: lab file, device kinds, budgets, model catalog, model/device pairs."""
