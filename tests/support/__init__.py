"""Test support shared by the tiers: real local stand-ins for outside services."""
