SELECT code FROM seed_trade_account WHERE n > 3 ORDER BY pg_temp.seed_int(:seed, n, 90), n LIMIT :limit;
