package httpapi

import "github.com/gin-gonic/gin"

func (s *server) registerAccounts(v1 *gin.RouterGroup) {}
