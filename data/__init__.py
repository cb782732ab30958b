"""The trajectory dataset layer: sources, collection, samplers and the replay buffer."""
