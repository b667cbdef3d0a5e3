package identity

import (
	"context"
	"encoding/json"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
)

// Subjects of the admin console (issue 12).
const (
	SubjectAdminStats       = "wxlogin.identity.admin.stats"
	SubjectAdminUserAdmin   = "wxlogin.identity.admin.users.admin"
	SubjectAdminAuditList   = "wxlogin.identity.admin.audit.list"
	SubjectAdminAuditRecord = "wxlogin.identity.admin.audit.record"
)

// SubjectAdminEventPrefix starts the subject of every admin event: the
// prefix and the audit action, e.g. wxlogin.events.admin.user.disable.
const SubjectAdminEventPrefix = "wxlogin.events.admin."

// Admin audit actions, the "action" of audit rows and admin events.
const (
	AuditUserDisable       = "user.disable"
	AuditUserEnable        = "user.enable"
	AuditUserGrantAdmin    = "user.grant_admin"
	AuditUserRevokeAdmin   = "user.revoke_admin"
	AuditSessionRevoke     = "session.revoke"
	AuditSessionsRevokeAll = "session.revoke_all"
)

// AdminStatsRequest asks for the dashboard figures.
type AdminStatsRequest struct {
	ActorID string `json:"actor_id"`
}

// AdminStats are the dashboard figures. Logins24h counts the logins of the
// last 24 hours (minute buckets) by kind, every known kind present.
type AdminStats struct {
	UsersTotal    int            `json:"users_total"`
	UsersNew24h   int            `json:"users_new_24h"`
	UsersNew7d    int            `json:"users_new_7d"`
	UsersDisabled int            `json:"users_disabled"`
	Logins24h     map[string]int `json:"logins_24h"`
}

// AdminSetAdminRequest grants (Admin true) or revokes admin rights; revoking
// the last enabled administrator is api.CodeLastAdmin.
type AdminSetAdminRequest struct {
	ActorID string `json:"actor_id"`
	UserID  string `json:"user_id"`
	Admin   bool   `json:"admin"`
}

// AdminAuditRecordRequest records an admin action done outside identity (a
// session revocation) before it is done.
type AdminAuditRecordRequest struct {
	ActorID  string          `json:"actor_id"`
	Action   string          `json:"action"`
	TargetID string          `json:"target_id"`
	Detail   json.RawMessage `json:"detail,omitempty"`
}

// AdminAuditRecordResult names the row written.
type AdminAuditRecordResult struct {
	ID string `json:"id"`
}

// AdminAuditListRequest pages through the audit log, newest first; empty
// filters match everything.
type AdminAuditListRequest struct {
	ActorID  string `json:"actor_id"`
	Actor    string `json:"actor,omitempty"`
	Target   string `json:"target,omitempty"`
	Action   string `json:"action,omitempty"`
	Page     int    `json:"page"`
	PageSize int    `json:"page_size"`
}

// AuditEntry is one admin action. ActorID is "" for the identity command line.
type AuditEntry struct {
	ID       string          `json:"id"`
	At       time.Time       `json:"at"`
	ActorID  string          `json:"actor_id"`
	Action   string          `json:"action"`
	TargetID string          `json:"target_id"`
	Detail   json.RawMessage `json:"detail"`
}

// AdminAuditPage is one page of the audit log. TotalCapped: there are more
// than Total matches (the count stops there).
type AdminAuditPage struct {
	Items       []AuditEntry `json:"items"`
	Total       int          `json:"total"`
	TotalCapped bool         `json:"total_capped,omitempty"`
}

// AdminEvent is the body of a wxlogin.events.admin.* event: the audit row.
type AdminEvent struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"` // "admin." + action
	OccurredAt time.Time       `json:"occurred_at"`
	AuditID    string          `json:"audit_id"`
	ActorID    string          `json:"actor_id,omitempty"`
	Action     string          `json:"action"`
	TargetID   string          `json:"target_id,omitempty"`
	Detail     json.RawMessage `json:"detail"`
}

// AdminStats returns the dashboard figures.
func (c *Client) AdminStats(ctx context.Context, req AdminStatsRequest) (AdminStats, error) {
	return natsrpc.Do[AdminStats](ctx, c.rpc, SubjectAdminStats, req)
}

// AdminSetAdmin grants or revokes admin rights.
func (c *Client) AdminSetAdmin(ctx context.Context, req AdminSetAdminRequest) (api.User, error) {
	return natsrpc.Do[api.User](ctx, c.rpc, SubjectAdminUserAdmin, req)
}

// AdminAuditRecord writes an audit row (and its event).
func (c *Client) AdminAuditRecord(ctx context.Context, req AdminAuditRecordRequest) (AdminAuditRecordResult, error) {
	return natsrpc.Do[AdminAuditRecordResult](ctx, c.rpc, SubjectAdminAuditRecord, req)
}

// AdminAuditList returns one page of the audit log.
func (c *Client) AdminAuditList(ctx context.Context, req AdminAuditListRequest) (AdminAuditPage, error) {
	return natsrpc.Do[AdminAuditPage](ctx, c.rpc, SubjectAdminAuditList, req)
}
