package httpapi

import "github.com/gin-gonic/gin"

func (s *server) registerAdmin(v1 *gin.RouterGroup) {}
