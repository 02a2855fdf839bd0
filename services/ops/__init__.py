"""Operations: daily and weekly checks, pgBackRest backups with verified restores."""
