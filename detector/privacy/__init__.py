"""Privacy: faces, licence plates and road users blurred in every evidence photo before it leaves the store."""
