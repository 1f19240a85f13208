"""Who a face is: the encoders, matching (1:1 and 1:N), the pair head, switching encoders."""
