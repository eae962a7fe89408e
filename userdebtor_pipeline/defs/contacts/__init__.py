"""M1-M3: a CRM contact gets one web user and a link per account it acts for; CSS accounts are mirrored."""
