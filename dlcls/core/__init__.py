"""The pure-PyTorch core: models, parameters, model file, storage, train step, prediction.
Nothing here imports ray."""
