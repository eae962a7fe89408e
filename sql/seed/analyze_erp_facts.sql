-- Temporary tables get no automatic statistics; the joins that use them need some.
ANALYZE seed_trade_account, seed_match_debtor;
