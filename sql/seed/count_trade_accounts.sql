SELECT count(*) FROM seed_trade_account;
