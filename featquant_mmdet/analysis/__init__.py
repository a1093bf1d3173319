"""Analyses of the paper: synthetic moment shift (Table 1), feature moments (Figure 1), learned exponents."""
