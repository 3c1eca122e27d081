"""Pure-Python text logic: every function here works on a string, with no Beam import."""
