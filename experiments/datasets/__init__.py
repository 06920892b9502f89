"""What the tasks read: the DataModule and the real-data splits (configs/dataset/*.yaml)."""
