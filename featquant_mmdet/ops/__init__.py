"""Pure tensor operations (no module state): the quantizing non-linearities and their gradients."""
