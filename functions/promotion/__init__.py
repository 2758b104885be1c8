"""Promoting dropped model files: gate them, then move the pointer (contracts.md section 2)."""
