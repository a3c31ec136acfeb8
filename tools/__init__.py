"""Scripts around socklab that are not socklab itself: a test swarm cluster on one machine (swarm_cluster)."""
