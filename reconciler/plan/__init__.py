"""Plans: the diff of desired against live state, as data (model), rendered for people."""
