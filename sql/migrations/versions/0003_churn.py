"""Churn model registry, scores, drift (issue 4)

Revision ID: 0003_churn
Revises: 0002_tags
"""
from alembic import op
import sqlalchemy as sa

revision = "0003_churn"
down_revision = "0002_tags"
branch_labels = None
depends_on = None

TS = sa.DateTime()  # naive UTC everywhere


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("version", sa.String(40), primary_key=True),
        sa.Column("trained_at", TS, nullable=False),
        sa.Column("train_cutoff", sa.Date), sa.Column("eval_cutoff", sa.Date), sa.Column("horizon_days", sa.Integer),
        sa.Column("features", sa.Text),  # JSON list
        sa.Column("metrics", sa.Text),  # JSON: roc_auc, pr_auc, brier, log_loss, lift_top_decile, n, churn_rate
        sa.Column("status", sa.String(16), nullable=False),  # champion / challenger / retired
        sa.Column("reason", sa.Text),  # why promoted or not, in words
        sa.Column("artifact", sa.LargeBinary),  # joblib bytes
        sa.Column("kind", sa.String(16)),  # logistic / hgb / blend
        sa.Column("trained_as_of", sa.Date),  # the business day whose data trained it (age for weekly retrain)
        sa.Column("promoted_at", TS), sa.Column("retired_at", TS),
        sa.Column("champion_metrics", sa.Text),  # JSON: the champion of the day re-evaluated on this model's holdout
        sa.Column("summary", sa.Text),  # JSON: TrainedModel.summary() (coefficients, BG/NBD, no-order rule, n_train)
    )
    op.create_index("ix_model_versions_status", "model_versions", ["status"])
    op.create_table(
        "churn_scores",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("model_version", sa.String(40), primary_key=True),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("risk_band", sa.String(8), nullable=False),  # high / medium / low
        sa.Column("reasons", sa.Text),  # JSON: codes + numbers; rendered per language
        sa.Column("scored_at", TS, nullable=False),
        sa.Column("as_of", sa.Date),
        # SQLite: the rows live in the primary-key B-tree itself (no separate rowid table +
        # key index), so the nightly rewrite of every score, inserted in key order, is about
        # twice as fast. Ignored by PostgreSQL.
        sqlite_with_rowid=False,
    )
    # No secondary index: every reader joins on the key (campaigns, tags overlay) or scans
    # the whole table (digest band counts), and each night rewrites all rows, where an extra
    # index only costs (it was ~25 % of the COPY of a million scores on PostgreSQL).
    op.create_table(
        "drift_checks",
        sa.Column("as_of", sa.Date, primary_key=True),
        sa.Column("model_version", sa.String(40), primary_key=True),
        sa.Column("psi", sa.Text),  # JSON per feature + score
        sa.Column("max_psi", sa.Float), sa.Column("threshold", sa.Float),
        sa.Column("breached", sa.Boolean, nullable=False),
        sa.Column("breached_features", sa.Text),  # JSON list
        sa.Column("n", sa.Integer),  # customers checked
        sa.Column("created_at", TS),
    )



def downgrade() -> None:
    for t in ["drift_checks", "churn_scores", "model_versions"]:
        op.drop_table(t)

