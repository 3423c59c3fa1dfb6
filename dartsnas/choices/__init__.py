"""Choice modules for a user's own model (NNI's LayerChoice and InputChoice), their alphas kept apart from the
model's parameters, and `fix`: the plain network of one architecture. Read docs/own-model.md."""
