SELECT count(*) FROM seed_user_email;
