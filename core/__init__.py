"""The ground floor: what every package of the project may import, and which imports no other package of ours."""
