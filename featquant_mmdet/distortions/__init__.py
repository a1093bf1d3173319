"""Image distortions: pure functions (``functional``) and thin pipeline transforms."""
