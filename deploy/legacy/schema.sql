-- Reference legacy schema: the order-to-cash monolith that fig strangles.
--
-- Loaded into a fresh database by the demo, the end-to-end tests and the benchmarks:
--     psql -h 127.0.0.1 -p 54329 -U fig -d <db> -v ON_ERROR_STOP=1 -f deploy/legacy/schema.sql
-- Plain DDL, run once per fresh database (not idempotent on purpose: a second run fails loudly).
-- The codes and abbreviations are explained in deploy/legacy/README.md; the mapping to domain
-- events lives in acl/mappings/order_to_cash.toml.
--
-- Replica identity, on purpose (see README.md):
--   FULL    cust_mstr, ord_hdr, pmt_txn, inv_rsv  (rules compare old and new values)
--   DEFAULT ord_ln                                (key-only old image on update/delete)
--   DEFAULT ord_doc                               (wide table; TOASTed values arrive "unchanged")
-- Money is numeric plus a currency column; timestamps are `timestamp` without time zone, in UTC.

-- Customer master. Also carries large free-text columns, so unchanged TOASTed values show up.
create table cust_mstr (
    cust_no       varchar(12)  not null primary key,
    cust_nm       varchar(120) not null,
    cust_typ_cd   char(1)      not null default 'R' check (cust_typ_cd in ('R', 'B')),
    email_addr    varchar(254),
    phn_no        varchar(32),
    addr_ln1      varchar(120) not null,
    addr_ln2      varchar(120),
    city_nm       varchar(80)  not null,
    post_cd       varchar(16)  not null,
    ctry_cd       char(2)      not null,
    crdt_lmt_amt  numeric(13, 2),
    crdt_curr_cd  char(3),
    actv_flg      char(1)      not null default 'Y' check (actv_flg in ('Y', 'N')),
    cust_nts_txt  text,
    crt_ts        timestamp(6) not null default (now() at time zone 'utc'),
    upd_ts        timestamp(6) not null default (now() at time zone 'utc'),
    upd_usr_id    varchar(16)  not null default 'BATCH'
);
alter table cust_mstr replica identity full;

-- Order header, with the customer denormalised into it as the monolith did.
-- ord_stat_cd: N new, A accepted, P pending payment, S secured, C confirmed, X cancelled,
-- E exception.
create table ord_hdr (
    ord_no        bigint       not null primary key,
    cust_no       varchar(12)  not null references cust_mstr (cust_no),
    cust_nm       varchar(120) not null,
    cust_email    varchar(254),
    ship_addr_ln1 varchar(120) not null,
    ship_city_nm  varchar(80)  not null,
    ship_post_cd  varchar(16)  not null,
    ship_ctry_cd  char(2)      not null,
    ord_stat_cd   char(1)      not null default 'N'
                  check (ord_stat_cd in ('N', 'A', 'P', 'S', 'C', 'X', 'E')),
    chnl_cd       char(1)      not null default 'W' check (chnl_cd in ('W', 'S', 'P', 'E')),
    ord_tot_amt   numeric(13, 2) not null default 0,
    curr_cd       char(3)      not null,
    excp_rsn_txt  varchar(400),
    ord_dt        date         not null default current_date,
    crt_ts        timestamp(6) not null default (now() at time zone 'utc'),
    upd_ts        timestamp(6) not null default (now() at time zone 'utc'),
    upd_usr_id    varchar(16)  not null default 'BATCH'
);
alter table ord_hdr replica identity full;
create index ord_hdr_cust_ix on ord_hdr (cust_no);
create index ord_hdr_stat_ix on ord_hdr (ord_stat_cd, upd_ts);

-- Order lines. Replica identity DEFAULT: updates and deletes carry only the key in the old image.
create table ord_ln (
    ord_no        bigint       not null references ord_hdr (ord_no),
    ln_no         integer      not null,
    sku_cd        varchar(24)  not null,
    sku_desc      varchar(200),
    ord_qty       integer      not null check (ord_qty > 0),
    unit_prc_amt  numeric(13, 2) not null,
    curr_cd       char(3)      not null,
    ln_stat_cd    char(1)      not null default 'O' check (ln_stat_cd in ('O', 'B', 'X')),
    upd_ts        timestamp(6) not null default (now() at time zone 'utc'),
    primary key (ord_no, ln_no)
);

-- Payment transactions. txn_typ_cd: A authorisation, C capture, R refund.
-- prov_rslt_cd: the payment provider's result code ('00' approved; see README.md); null while the
-- provider has not answered yet.
create table pmt_txn (
    txn_id        bigint       not null primary key,
    ord_no        bigint       not null references ord_hdr (ord_no),
    txn_typ_cd    char(1)      not null check (txn_typ_cd in ('A', 'C', 'R')),
    txn_amt       numeric(13, 2) not null,
    curr_cd       char(3)      not null,
    prov_cd       varchar(8)   not null,
    prov_rslt_cd  varchar(4),
    prov_ref_no   varchar(64),
    orig_txn_id   bigint       references pmt_txn (txn_id),
    txn_ts        timestamp(6) not null default (now() at time zone 'utc'),
    upd_ts        timestamp(6) not null default (now() at time zone 'utc')
);
alter table pmt_txn replica identity full;
create index pmt_txn_ord_ix on pmt_txn (ord_no);

-- Inventory reservations. rsv_stat_cd: R reserved, L released, F fulfilled.
create table inv_rsv (
    rsv_id        bigint       not null primary key,
    ord_no        bigint       not null references ord_hdr (ord_no),
    ln_no         integer      not null,
    sku_cd        varchar(24)  not null,
    whs_cd        varchar(6)   not null,
    rsv_qty       integer      not null check (rsv_qty > 0),
    rsv_stat_cd   char(1)      not null default 'R' check (rsv_stat_cd in ('R', 'L', 'F')),
    exp_ts        timestamp(6),
    upd_ts        timestamp(6) not null default (now() at time zone 'utc')
);
alter table inv_rsv replica identity full;
create index inv_rsv_ord_ix on inv_rsv (ord_no, ln_no);

-- Order documents: the wide table. Large text columns are stored out of line (TOAST), so an update
-- that does not touch them sends them as "unchanged" rather than as values. Not mapped to events.
create table ord_doc (
    ord_no        bigint       not null primary key references ord_hdr (ord_no),
    doc_typ_cd    char(1)      not null default 'I' check (doc_typ_cd in ('I', 'D', 'G')),
    gift_msg_txt  text,
    dlvry_instr_txt text,
    inv_xml_txt   text,
    pck_lst_txt   text,
    upd_ts        timestamp(6) not null default (now() at time zone 'utc')
);
alter table ord_doc alter column inv_xml_txt set storage external;
alter table ord_doc alter column pck_lst_txt set storage external;

-- Transactional outbox written by newer parts of the monolith in the same transaction as the
-- business change. The CDC bridge turns each insert into an OutboxMessage event.
create table evt_outbox (
    id             uuid         not null primary key default gen_random_uuid(),
    aggregate_type varchar(64)  not null,
    aggregate_id   varchar(128) not null,
    event_type     varchar(128) not null,
    payload        jsonb        not null,
    headers        jsonb        not null default '{}'::jsonb,
    created_at     timestamptz  not null default now()
);

-- Sequences the monolith uses for its keys.
create sequence ord_no_seq start with 100000;
create sequence pmt_txn_seq start with 500000;
create sequence inv_rsv_seq start with 700000;
