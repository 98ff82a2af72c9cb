"""Training: the step functions and recipe of EdiDub appendix B.2 (`steps`), the data shards
(`data`), the loop and its command (`loop`), distributed helpers (`ddp`)."""
