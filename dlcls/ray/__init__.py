"""The Ray layers: distributed preprocessing (data), training (train), offline classification and
evaluation (batch) and serving (serve). The only part of dlcls that imports ray."""
