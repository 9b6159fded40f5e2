"""The model on paper: the one traffic model of a scenario's network
(:mod:`simq.model.network`), read by the matching of a scenario to theory
(:mod:`simq.model.predict`), the single open station of the sweep's theory columns
(:mod:`simq.model.station`) and the warnings for queues that cannot keep up
(:mod:`simq.model.stability`)."""
