"""The model on paper: the one traffic model of a scenario's network
(:mod:`simq.model.network`) and the matching of a scenario to theory
(:mod:`simq.model.predict`)."""
