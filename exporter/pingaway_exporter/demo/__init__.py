"""The simulated Pingaway that --demo and the tests talk to."""
