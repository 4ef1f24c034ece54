"""Local stand-ins for the outside systems the swarm talks to, served over real HTTP."""
