"""Imported first by every tool. Python puts a script's own folder first on sys.path, where the script
tools/pretrain.py would shadow the package ``pretrain``; this puts the checkout's root ahead of it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
