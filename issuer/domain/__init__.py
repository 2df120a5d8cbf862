"""The pure rules of letter issuance: VINs, USCCs, countries, outlets, eligibility. No I/O, no clock."""
