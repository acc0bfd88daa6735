"""Pieces of the trainer that are not TRL glue: the reference copy and the pass counter."""
