INSERT INTO erp.deb_conversion (conversion_seq, old_cust_code, new_cust_code, conversion_date)
SELECT * FROM unnest(CAST(:seqs AS bigint[]), CAST(:olds AS text[]), CAST(:news AS text[]),
                     CAST(:ats AS timestamptz[]));
