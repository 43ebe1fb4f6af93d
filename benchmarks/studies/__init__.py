"""One-off studies that produce results/ (A/Bs, seed studies, profiles); the product bench is one level up."""
