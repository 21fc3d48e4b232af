"""Tantra's core: one subpackage per role (``hearing``, ``language``, ``voice``, ``vision``, ``memory``, ``talk``) on a
shared ``runtime`` (which holds the model store too), the network definitions in ``models``, and in front of them
the loader."""
