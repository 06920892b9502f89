"""Lightning modules, one per paper experiment, on a shared ``TaskModule`` base."""
