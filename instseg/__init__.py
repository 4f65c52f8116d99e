"""instseg."""
