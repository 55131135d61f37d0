"""The papers' claim at CPU scale (issue 18): pretraining on an unlabelled pool of the textured toy world
(pretrain/toy_world.py) against random initialisation, measured by kNN and a linear probe on frozen
features over seeds. ``tools/mini_repro.py --claim`` runs it."""
