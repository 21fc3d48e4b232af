"""Tantra's core: one subpackage per role (``hearing``, ``language``, ``voice``, ``vision``, ``memory``, ``talk``) on a
shared ``runtime``, the network definitions in ``models``, and in front of them the model store and the loader."""
