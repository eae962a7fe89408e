-- Writes the ERP's changes to the web users, records the new bases and the conflicts (U4/U5).

-- step: users
UPDATE web.app_user u SET
    email_address = CASE WHEN c.email_way = 'to_web' THEN c.email ELSE u.email_address END,
    name          = CASE WHEN c.name_way = 'to_web' THEN c.name ELSE u.name END,
    address1      = CASE WHEN c.address1_way = 'to_web' THEN c.address1 ELSE u.address1 END,
    address2      = CASE WHEN c.address2_way = 'to_web' THEN c.address2 ELSE u.address2 END,
    address3      = CASE WHEN c.address3_way = 'to_web' THEN c.address3 ELSE u.address3 END,
    address4      = CASE WHEN c.address4_way = 'to_web' THEN c.address4 ELSE u.address4 END,
    address5      = CASE WHEN c.address5_way = 'to_web' THEN c.address5 ELSE u.address5 END,
    address6      = CASE WHEN c.address6_way = 'to_web' THEN c.address6 ELSE u.address6 END,
    phone_number  = CASE WHEN c.phone_number_way = 'to_web' THEN c.phone_number ELSE u.phone_number END,
    postcode      = CASE WHEN c.postcode_way = 'to_web' THEN c.postcode ELSE u.postcode END,
    abn           = CASE WHEN c.abn_way = 'to_web' THEN c.abn ELSE u.abn END,
    industry_code = CASE WHEN c.industry_code_way = 'to_web' THEN c.industry_code ELSE u.industry_code END,
    updated_at = now()
  FROM userdebtor.plan_field_change_by_pair c
 WHERE u.user_id = c.user_id AND c.any_to_web;

-- step: bases
-- What both sides now hold becomes the base, so neither write comes back as a change.
UPDATE userdebtor.user_debtor_link l SET
    base_email    = CASE WHEN c.email_way IN ('to_erp', 'to_web', 'none') THEN c.email ELSE l.base_email END,
    base_name     = CASE WHEN c.name_way IN ('to_erp', 'to_web', 'none') THEN c.name ELSE l.base_name END,
    base_address1 = CASE WHEN c.address1_way IN ('to_erp', 'to_web', 'none') THEN c.address1 ELSE l.base_address1 END,
    base_address2 = CASE WHEN c.address2_way IN ('to_erp', 'to_web', 'none') THEN c.address2 ELSE l.base_address2 END,
    base_address3 = CASE WHEN c.address3_way IN ('to_erp', 'to_web', 'none') THEN c.address3 ELSE l.base_address3 END,
    base_address4 = CASE WHEN c.address4_way IN ('to_erp', 'to_web', 'none') THEN c.address4 ELSE l.base_address4 END,
    base_address5 = CASE WHEN c.address5_way IN ('to_erp', 'to_web', 'none') THEN c.address5 ELSE l.base_address5 END,
    base_address6 = CASE WHEN c.address6_way IN ('to_erp', 'to_web', 'none') THEN c.address6 ELSE l.base_address6 END,
    base_phone_number = CASE WHEN c.phone_number_way IN ('to_erp', 'to_web', 'none') THEN c.phone_number ELSE l.base_phone_number END,
    base_postcode = CASE WHEN c.postcode_way IN ('to_erp', 'to_web', 'none') THEN c.postcode ELSE l.base_postcode END,
    base_abn      = CASE WHEN c.abn_way IN ('to_erp', 'to_web', 'none') THEN c.abn ELSE l.base_abn END,
    base_industry_code = CASE WHEN c.industry_code_way IN ('to_erp', 'to_web', 'none') THEN c.industry_code ELSE l.base_industry_code END,
    updated_at = now()
  FROM userdebtor.plan_field_change_by_pair c
 WHERE l.link_id = c.link_id;

-- step: conflicts_settled_by_person
UPDATE userdebtor.conflict k SET status = 'applied', applied_at = now()
  FROM userdebtor.plan_field_change p
 WHERE k.link_id = p.link_id AND k.field = p.field AND k.status = 'resolved'
   AND p.direction IN ('to_erp', 'to_web', 'none');

-- step: conflicts_recorded
-- One record per distinct conflict (the same values seen again are not a new conflict).
INSERT INTO userdebtor.conflict (link_id, user_id, dr_cust_code, field, base_value, web_value, erp_value, policy,
                                 status, winner, run_id)
SELECT p.link_id, p.user_id, p.dr_cust_code, p.field, p.base_value, p.web_value, p.erp_value, :policy,
       CASE WHEN p.direction = 'held' THEN 'open' ELSE 'settled' END,
       CASE p.direction WHEN 'to_web' THEN 'erp' WHEN 'to_erp' THEN 'web' END,
       :run_id
  FROM userdebtor.plan_field_change p
 WHERE p.is_conflict
   AND NOT EXISTS (SELECT 1 FROM userdebtor.conflict k
                    WHERE k.link_id = p.link_id AND k.field = p.field
                      AND k.web_value IS NOT DISTINCT FROM p.web_value AND k.erp_value IS NOT DISTINCT FROM p.erp_value)
ON CONFLICT DO NOTHING;

-- step: conflicts_warned
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT 'conflict', 'U4',
       'link:' || p.link_id || '/' || p.field || '/' || md5(coalesce(p.web_value, '') || '|' || coalesce(p.erp_value, '')),
       p.field || ' of debtor ' || p.dr_cust_code || ' / web user ' || p.user_id || ' changed on both sides: was "'
       || coalesce(p.base_value, '') || '", web "' || coalesce(p.web_value, '') || '", ERP "'
       || coalesce(p.erp_value, '') || '"; ' || CASE p.direction
            WHEN 'held' THEN 'both sides were left as they are until a person settles it (userdebtor resolve)'
            WHEN 'to_web' THEN 'the ERP value was kept (' || :policy || ')'
            ELSE 'the web value was kept (' || :policy || ')' END,
       true
  FROM userdebtor.plan_field_change p
 WHERE p.is_conflict
ON CONFLICT DO NOTHING
