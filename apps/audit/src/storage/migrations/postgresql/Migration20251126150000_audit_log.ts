import { Migration } from "@mikro-orm/migrations";

/** The audit log and its chain head (PostgreSQL; unqualified names resolve through the app's search_path). */
export class Migration20251126150000_audit_log extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      'create table "audit_chain_head" ("id" int not null, "seq" bigint not null, "hash" varchar(64) not null, constraint "audit_chain_head_pkey" primary key ("id"));',
    );
    // The head starts at seq 0 with the genesis hash (32 zero bytes), so seq 1 links to it.
    this.addSql(`insert into "audit_chain_head" ("id", "seq", "hash") values (1, 0, '${"0".repeat(64)}');`);
    this.addSql(
      'create table "audit_event" ("seq" bigint not null, "id" varchar(36) not null, "occurred_at" timestamptz not null, "recorded_at" timestamptz not null, "actor_kind" varchar(16) not null, "actor_id" varchar(256) not null, "actor_roles" text not null, "action" varchar(128) not null, "resource_type" varchar(64) not null, "resource_id" varchar(256) not null, "outcome" varchar(16) not null, "request_id" varchar(128) not null, "details" text not null, "producer" varchar(64) not null, "prev_hash" varchar(64) not null, "hash" varchar(64) not null, constraint "audit_event_pkey" primary key ("seq"));',
    );
    this.addSql('alter table "audit_event" add constraint "audit_event_id_unique" unique ("id");');
    this.addSql('create index "audit_event_action_seq_index" on "audit_event" ("action", "seq");');
    this.addSql('create index "audit_event_resource_seq_index" on "audit_event" ("resource_type", "resource_id", "seq");');
    this.addSql('create index "audit_event_actor_seq_index" on "audit_event" ("actor_id", "seq");');
    this.addSql('create index "audit_event_occurred_at_index" on "audit_event" ("occurred_at");');
  }
}
